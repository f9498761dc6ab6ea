# Deployed by the VM test to be rolled back: it removes the agent's address
# on the test network, so the controller can no longer reach the agent to
# confirm, and the agent's dead-man switch restores the previous generation
# (whose network-addresses-eth1.service adds the address again).
{ lib, ... }:
{
  environment.etc."panther-test-generation".text = "2";
  networking.interfaces.eth1.ipv4.addresses = lib.mkForce [ ];
}

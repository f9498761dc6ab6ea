# TEST ONLY: the controller signing key of the VM test (nixos-module/tests/vm.nix).
# It is public in this repository; never trust it on a real host.
{
  public = "panther-ed25519:NB9ijLRYoN7ZrAZ4kItGV9kSTgyVAVeOQXnuyY3kKNY=";
  private = "panther-ed25519-private:KmVX4UUb04gCZ3f5ImRAYseF7pU8G8UoKuYdzAX1DIQ=";
}

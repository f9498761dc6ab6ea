# Deployed by the VM test and confirmed: a harmless change.
{
  environment.etc."panther-test-generation".text = "1";
}

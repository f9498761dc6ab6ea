# A self-signed certificate for the VM test's Headscale (CN and SAN
# "headscale"): tailnet clients reach the control server and its embedded
# DERP relay over HTTPS. Test nodes trust it via security.pki.
pkgs:
pkgs.runCommand "panther-test-tls" { nativeBuildInputs = [ pkgs.openssl ]; } ''
  mkdir -p $out
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -days 3650 -subj /CN=headscale -addext subjectAltName=DNS:headscale \
    -keyout $out/key.pem -out $out/cert.pem
''

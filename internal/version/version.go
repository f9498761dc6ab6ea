// Package version holds the build's version, injected at link time with
// -ldflags "-X github.com/pantheros/panther/internal/version.Version=v1.2.3".
package version

// Version is the release this binary was built from; "dev" when not injected.
var Version = "dev"

package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"

	"github.com/pantheros/panther/internal/signing"
	"github.com/pantheros/panther/internal/version"
)

func (c *CLI) keygenCmd() *command {
	return &command{
		name: "keygen", usage: "keygen [--key PATH]",
		short: "Create the operator's signing key and print its public key.",
		long: `Writes a new ed25519 private key (mode 0600; never overwrites) and prints the
public key as one line to paste into each agent's trustedKeys.`,
		run: func(ctx context.Context, args []string) error {
			key, err := signing.GenerateKey()
			if err != nil {
				return err
			}
			if err := signing.WritePrivateKey(c.g.key, key); err != nil {
				if errors.Is(err, signing.ErrKeyExists) {
					return exitf(ExitError, "%s already holds a key; 'pantherctl pubkey' prints its public key", c.g.key)
				}
				return err
			}
			fmt.Fprintf(c.io.Stderr, "wrote private key to %s; add this line to each agent's trustedKeys:\n", c.g.key)
			fmt.Fprintln(c.io.Stdout, signing.FormatPublicKey(signing.Public(key)))
			return nil
		},
	}
}

func (c *CLI) pubkeyCmd() *command {
	return &command{
		name: "pubkey", usage: "pubkey [--key PATH]",
		short: "Print the public key of the operator's signing key.",
		run: func(ctx context.Context, args []string) error {
			s, err := c.signer()
			if err != nil {
				return err
			}
			fmt.Fprintln(c.io.Stdout, signing.FormatPublicKey(signing.Public(s.Key)))
			return nil
		},
	}
}

func (c *CLI) versionCmd() *command {
	return &command{
		name: "version", usage: "version", short: "Print pantherctl's version.",
		flags: func(fs *flag.FlagSet) {},
		run: func(ctx context.Context, args []string) error {
			fmt.Fprintln(c.io.Stdout, "pantherctl "+version.Version)
			return nil
		},
	}
}

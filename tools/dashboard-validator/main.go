// Command dashboard-validator parses Grafana dashboard JSON files strictly with the Grafana Foundation SDK
// (unknown fields, wrong types and missing required fields are errors; panel options and Prometheus targets are
// decoded by their plugin's own types) and runs the SDK's validation. It prints one line per problem and exits 1
// if any file has one.
//
//	dashboard-validator dashboards/*.json
package main

import (
	"fmt"
	"os"

	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/cog/plugins"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
)

// failed drops the empty error list the SDK returns as a non-nil error when nothing is wrong.
func failed(err error) error {
	if errs, ok := err.(cog.BuildErrors); ok && len(errs) == 0 {
		return nil
	}
	return err
}

func validate(path string) error {
	raw, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var board dashboard.Dashboard
	if err := failed(board.UnmarshalJSONStrict(raw)); err != nil {
		return fmt.Errorf("strict parse: %w", err)
	}
	if err := failed(board.Validate()); err != nil {
		return fmt.Errorf("validation: %w", err)
	}
	return nil
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: dashboard-validator FILE.json...")
		os.Exit(2)
	}
	plugins.RegisterDefaultPlugins()
	bad := false
	for _, path := range os.Args[1:] {
		if err := validate(path); err != nil {
			fmt.Printf("%s: %v\n", path, err)
			bad = true
		} else {
			fmt.Printf("%s: ok\n", path)
		}
	}
	if bad {
		os.Exit(1)
	}
}

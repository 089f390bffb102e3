// Command dashboard-validator parses Grafana dashboard JSON files strictly with the Grafana Foundation SDK
// (unknown fields, wrong types and missing required fields are errors; panel options and Prometheus targets are
// decoded by their plugin's own types) and runs the SDK's validation. It prints one line per problem and exits 1
// if any file has one.
//
// Only the plugins our dashboards use are registered (the SDK's full set takes minutes to compile); a panel of
// another type is an error, so nothing goes unchecked: add its plugin here when a dashboard starts using one.
//
//	dashboard-validator dashboards/*.json
package main

import (
	"encoding/json"
	"fmt"
	"os"

	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/cog/variants"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
	"github.com/grafana/grafana-foundation-sdk/go/prometheus"
	"github.com/grafana/grafana-foundation-sdk/go/stat"
	"github.com/grafana/grafana-foundation-sdk/go/table"
	"github.com/grafana/grafana-foundation-sdk/go/timeseries"
)

// panelTypes are the panel plugins whose options are decoded strictly.
var panelTypes = map[string]bool{}

func register() {
	runtime := cog.NewRuntime()
	for _, config := range []variants.PanelcfgConfig{stat.VariantConfig(), table.VariantConfig(),
		timeseries.VariantConfig()} {
		runtime.RegisterPanelcfgVariant(config)
		panelTypes[config.Identifier] = true
	}
	runtime.RegisterDataqueryVariant(prometheus.VariantConfig())
}

// unregistered names the panels whose type has no registered plugin (read from the raw JSON: the SDK's
// decoded panel list does not keep them).
func unregistered(raw []byte) error {
	var board struct {
		Panels []struct {
			Type string `json:"type"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(raw, &board); err != nil {
		return err
	}
	for i, panel := range board.Panels {
		if !panelTypes[panel.Type] {
			return fmt.Errorf("panels[%d]: panel type %q is not registered in the validator", i, panel.Type)
		}
	}
	return nil
}

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
	return unregistered(raw)
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: dashboard-validator FILE.json...")
		os.Exit(2)
	}
	register()
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

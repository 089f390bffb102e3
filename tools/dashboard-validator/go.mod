// The dashboard validator: strict parsing of Grafana dashboard JSON with the Grafana Foundation SDK.
module fluxtenantexporter.local/tools/dashboard-validator

go 1.24

require github.com/grafana/grafana-foundation-sdk/go v0.0.22

"""``python -m flux_tenant_exporter``."""

import sys

from flux_tenant_exporter.cli.main import main

sys.exit(main())

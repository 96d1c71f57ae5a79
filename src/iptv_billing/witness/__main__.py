"""``python -m iptv_billing.witness``: the witness commands without the billing CLI."""

from iptv_billing.witness.cli import main

main()

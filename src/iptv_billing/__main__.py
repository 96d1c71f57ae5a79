from iptv_billing.cli import main

main()

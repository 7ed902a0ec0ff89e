from mss_cli.cli import main

main()

from mss_research.cli import main

main()

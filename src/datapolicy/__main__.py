from datapolicy.cli import main

main()

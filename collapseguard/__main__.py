from collapseguard.cli.main import main

main()

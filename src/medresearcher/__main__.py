from medresearcher.cli import main

main()

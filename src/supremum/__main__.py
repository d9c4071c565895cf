from supremum.cli import main

main()

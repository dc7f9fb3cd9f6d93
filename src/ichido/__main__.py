from ichido.cli import main

main()

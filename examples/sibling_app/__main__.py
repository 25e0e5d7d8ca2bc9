from examples.sibling_app.app import main

main()

from lab.cli.parser import main

raise SystemExit(main())

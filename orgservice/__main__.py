from orgservice.cli import main

raise SystemExit(main())

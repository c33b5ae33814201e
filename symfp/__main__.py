from symfp.app.cli import main

raise SystemExit(main())

from symfp.cli import main

raise SystemExit(main())

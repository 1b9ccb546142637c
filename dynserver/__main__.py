from dynserver.cli import main

raise SystemExit(main())

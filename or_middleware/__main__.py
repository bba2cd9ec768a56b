from or_middleware.cli import main

raise SystemExit(main())

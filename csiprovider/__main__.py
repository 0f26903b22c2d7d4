from csiprovider.cli import main

raise SystemExit(main())

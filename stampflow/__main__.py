from stampflow.stream.cli import main

raise SystemExit(main())

from services.detector.main import main

main()

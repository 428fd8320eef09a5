from services.audit.main import main

main()

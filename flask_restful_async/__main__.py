from flask_restful_async.server.cli import main

if __name__ == "__main__":
    main()

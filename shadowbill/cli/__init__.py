"""The command line: a thin click layer over the library (app.py is the `shadowbill` group)."""

"""DVC stage 'tune': see `dataqa tune --help`."""

from dataqa.cli import stage_main

if __name__ == "__main__":
    stage_main("tune")

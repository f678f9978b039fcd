"""DVC stage 'filter': see `dataqa filter --help`."""

from dataqa.cli import stage_main

if __name__ == "__main__":
    stage_main("filter")

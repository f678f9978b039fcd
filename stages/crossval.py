"""DVC stage 'crossval': see `dataqa crossval --help`."""

from dataqa.cli import stage_main

if __name__ == "__main__":
    stage_main("crossval")

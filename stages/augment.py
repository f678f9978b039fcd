"""DVC stage 'augment': see `dataqa augment --help`."""

from dataqa.cli import stage_main

if __name__ == "__main__":
    stage_main("augment")

"""DVC stage 'subsample': see `dataqa subsample --help`."""

from dataqa.cli import stage_main

if __name__ == "__main__":
    stage_main("subsample")

"""DVC stage 'audit': see `dataqa audit --help`."""

from dataqa.cli import stage_main

if __name__ == "__main__":
    stage_main("audit")

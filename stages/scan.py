"""DVC stage 'scan': see `dataqa scan --help`."""

from dataqa.cli import stage_main

if __name__ == "__main__":
    stage_main("scan")

"""DVC stage 'report': see `dataqa report --help`."""

from dataqa.cli import stage_main

if __name__ == "__main__":
    stage_main("report")

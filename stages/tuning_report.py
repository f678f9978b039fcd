"""DVC stage 'tuning_report': see `dataqa tuning_report --help`."""

from dataqa.cli import stage_main

if __name__ == "__main__":
    stage_main("tuning_report")

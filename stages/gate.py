"""DVC stage 'gate': see `dataqa gate --help`."""

from dataqa.cli import stage_main

if __name__ == "__main__":
    stage_main("gate")

"""DVC stage 'fingerprint': see `dataqa fingerprint --help`."""

from dataqa.cli import stage_main

if __name__ == "__main__":
    stage_main("fingerprint")

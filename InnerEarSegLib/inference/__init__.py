"""From a scan to labels: preprocessing, running the networks, locating and confirming the ears,
and cleaning the labels up. ``flow.segment`` calls these stages in order."""

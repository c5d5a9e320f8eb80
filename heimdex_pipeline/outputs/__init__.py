"""What a video's steps write and the rules it must follow: the sidecar document and the checks' rules."""

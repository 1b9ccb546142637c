"""The DNS core: wire parsing, zone data, the answering logic and the answer snapshot."""

"""Transport adapters: each turns a media stream into internal 20 ms 16 kHz PCM16 frames."""

"""mu-law/PCM16 codecs, resampling and 20 ms framing."""

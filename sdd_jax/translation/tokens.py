"""The special token ids of the joint SentencePiece vocabulary (spm.py trains it with these)."""
PAD, UNK, BOS, EOS = 0, 1, 2, 3

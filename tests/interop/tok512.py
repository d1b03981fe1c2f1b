"""stories260K's tok512.bin (a llama2.c tokenizer) as a GGUF `llama` vocabulary, for the
random-weight interop models, so both engines can print text. Shared by make_*_gguf.py."""
import struct


def add_tok512_vocab(w, models, V=512):
    """Writes the 512-token SentencePiece-style vocabulary into GGUFWriter w (BOS 1, EOS 2)."""
    with open(f"{models}/tok512.bin", "rb") as f:
        f.read(4)
        tokens, scores, types = [], [], []
        for i in range(V):
            sc, n = struct.unpack("<fi", f.read(8))
            piece = f.read(n).decode("utf-8")
            piece = {1: "<s>", 2: "</s>"}.get(i, piece.replace(" ", "\u2581") if i > 258 else piece)
            tokens.append(piece)
            scores.append(sc)
            types.append(3 if i in (1, 2) else 2 if i == 0 else 6 if 3 <= i <= 258 else 1)
    w.add_tokenizer_model("llama")
    w.add_token_list(tokens)
    w.add_token_scores(scores)
    w.add_token_types(types)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_add_space_prefix(True)

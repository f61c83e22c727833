"""Cross-modal memory: embeddings, a FAISS index and recall of past artifacts (to come)."""

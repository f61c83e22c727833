"""Cross-modal memory: every artifact attached or made, embedded in the installed spaces
(MiniLM over derived text, CLIP/SigLIP, CLAP, ImageBind), indexed with FAISS, described in
SQLite, and found again by words or by an example of any modality (``memory.memory.Memory``)."""

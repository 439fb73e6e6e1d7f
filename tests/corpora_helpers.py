"""The SurgLaVi-β database schema the corpus tests write fixtures in: the tables and columns of the
authors' schema diagram (docs/corpora.md)."""

SCHEMA = """
CREATE TABLE videos (
    video_id INTEGER PRIMARY KEY, title VARCHAR, name VARCHAR, url VARCHAR, runtime VARCHAR, year INTEGER,
    fps FLOAT, duration FLOAT, frame_count INTEGER, width INTEGER, height INTEGER, youtube_id VARCHAR,
    description TEXT, procedure_modality VARCHAR, procedure_type VARCHAR, specialty VARCHAR, subject VARCHAR,
    total_caption_count INTEGER
);
CREATE TABLE levels (level_id INTEGER PRIMARY KEY, name VARCHAR NOT NULL);
CREATE TABLE captions (
    caption_id INTEGER PRIMARY KEY, video_id INTEGER NOT NULL REFERENCES videos(video_id), video_name VARCHAR,
    level_id INTEGER NOT NULL REFERENCES levels(level_id), raw_narration TEXT, caption TEXT,
    start_time FLOAT, end_time FLOAT, duration FLOAT, is_surgical_content BOOLEAN, is_descriptive BOOLEAN
);
CREATE TABLE transcriptions (
    transcription_id INTEGER PRIMARY KEY, video_id INTEGER NOT NULL, file_path VARCHAR, text TEXT
);
"""

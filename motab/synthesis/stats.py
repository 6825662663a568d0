"""Summary of a synthesis file: how much of the text each model wrote, and how often it was right.

The teacher share (teacher tokens / all tokens) is the column the tables report per method:
1.0 for teacher-only, strictly between 0 and 1 for MOTAB and SKD.
"""

from __future__ import annotations


def synth_stats(rows: list[dict]) -> dict:
    teacher = sum(row["stats"]["teacher_tokens"] for row in rows)
    student = sum(row["stats"]["student_tokens"] for row in rows)
    graded = [row["correct"] for row in rows if row.get("correct") is not None]
    return {
        "rows": len(rows),
        "problems": len({row["id"] for row in rows}),
        "teacher_tokens": teacher,
        "student_tokens": student,
        "teacher_share": round(teacher / (teacher + student), 6) if teacher + student else None,
        "accepted_steps": sum(row["stats"].get("accepted_steps", 0) for row in rows),
        "rejected_steps": sum(row["stats"].get("rejected_steps", 0) for row in rows),
        "correct_rate": round(sum(graded) / len(graded), 6) if graded else None,
    }

"""The page's words in English and Japanese. The language comes from a cookie the operator sets
with the switch on every page, else from the browser's Accept-Language."""

from __future__ import annotations

from typing import Callable

LANGUAGES = ("en", "ja")

MESSAGES: dict[str, dict[str, str]] = {
    "title": {"en": "ichido dashboard", "ja": "ichido ダッシュボード"},
    "login": {"en": "Log in", "ja": "ログイン"},
    "logout": {"en": "Log out", "ja": "ログアウト"},
    "token": {"en": "Token", "ja": "トークン"},
    "bad_token": {"en": "That token is not valid.", "ja": "トークンが正しくありません。"},
    "slow_down": {"en": "That token is not valid, and this address has tried too many:"
                        " each attempt now waits a second.",
                  "ja": "トークンが正しくありません。このアドレスからの試行が多すぎるため、"
                        "ログインは1回ごとに1秒待たされます。"},
    "overview": {"en": "Overview", "ja": "概要"},
    "events": {"en": "Events", "ja": "イベント"},
    "dead_letters": {"en": "Dead letters", "ja": "デッドレター"},
    "actions": {"en": "Actions", "ja": "操作履歴"},
    "now": {"en": "Now", "ja": "現在"},
    "received": {"en": "received", "ja": "受信"},
    "unique": {"en": "unique", "ja": "ユニーク"},
    "duplicates_cache": {"en": "duplicates (seen tier)", "ja": "重複（キャッシュ層）"},
    "duplicates_durable": {"en": "duplicates (durable)", "ja": "重複（永続層）"},
    "duplicates_twin": {"en": "duplicates (twin shape)", "ja": "重複（別形式の同一変更）"},
    "twin": {"en": "twin", "ja": "別形式で適用済み"},
    "processed": {"en": "processed", "ja": "処理済み"},
    "ignored": {"en": "ignored", "ja": "無視"},
    "pending": {"en": "pending", "ja": "待機中"},
    "processing": {"en": "processing", "ja": "処理中"},
    "retrying": {"en": "retrying", "ja": "再試行中"},
    "dead": {"en": "dead", "ja": "失敗（デッド）"},
    "stale": {"en": "stale", "ja": "古いイベント"},
    "reconciled": {"en": "reconciled", "ja": "照合で回収"},
    "backlog": {"en": "backlog", "ja": "未処理"},
    "oldest_pending": {"en": "oldest pending", "ja": "最古の未処理"},
    "none": {"en": "none", "ja": "なし"},
    "last_hour": {"en": "Last hour", "ja": "直近1時間"},
    "last_day": {"en": "Last day", "ja": "直近24時間"},
    "deliveries": {"en": "deliveries", "ja": "配信"},
    "duplicates": {"en": "duplicates", "ja": "重複"},
    "failures": {"en": "failures", "ja": "失敗"},
    "duplicates_since": {"en": "duplicates sampled since", "ja": "重複の記録開始"},
    "type": {"en": "Type", "ja": "種類"},
    "status": {"en": "Status", "ja": "状態"},
    "shape": {"en": "Shape", "ja": "形式"},
    "object_id": {"en": "Stripe object id", "ja": "Stripe オブジェクト ID"},
    "since": {"en": "Created since", "ja": "作成日時（から）"},
    "until": {"en": "Created before", "ja": "作成日時（まで）"},
    "searched": {"en": "Id text looked through the newest matching events:",
                 "ja": "ID の部分一致で調べた新しいイベント数："},
    "search_more": {"en": "the next page searches older ones", "ja": "次のページでさらに古いものを検索"},
    "replayed": {"en": "replayed", "ja": "再実行"},
    "alerts": {"en": "alerts", "ja": "アラート"},
    "id_contains": {"en": "Id contains", "ja": "ID に含む"},
    "any": {"en": "any", "ja": "すべて"},
    "filter": {"en": "Filter", "ja": "絞り込み"},
    "clear": {"en": "Clear", "ja": "解除"},
    "next_page": {"en": "Next page", "ja": "次のページ"},
    "first_page": {"en": "First page", "ja": "最初のページ"},
    "no_events": {"en": "No events match.", "ja": "該当するイベントはありません。"},
    "received_at": {"en": "Received", "ja": "受信日時"},
    "attempts": {"en": "Attempts", "ja": "試行回数"},
    "last_error": {"en": "Last error", "ja": "最後のエラー"},
    "finished_at": {"en": "Finished", "ja": "完了日時"},
    "next_attempt_at": {"en": "Next attempt", "ja": "次の試行"},
    "created": {"en": "Created at Stripe", "ja": "Stripe での作成日時"},
    "payload": {"en": "Payload", "ja": "ペイロード"},
    "handlers": {"en": "Handlers", "ja": "ハンドラー"},
    "no_handler": {"en": "no handler: stored as ignored", "ja": "ハンドラーなし（無視として保存）"},
    "handlers_unknown": {"en": "not known here (run with --app to see them)",
                         "ja": "不明（--app を指定すると表示）"},
    "attempt": {"en": "Attempt", "ja": "試行"},
    "failed_at": {"en": "failed at", "ja": "失敗日時"},
    "no_failures": {"en": "No failed attempts.", "ja": "失敗した試行はありません。"},
    "retry": {"en": "Retry", "ja": "再試行"},
    "retry_all": {"en": "Retry every dead letter matching", "ja": "条件に合うデッドレターをすべて再試行"},
    "retried": {"en": "Requeued", "ja": "再投入"},
    "progress": {"en": "Progress", "ja": "進捗"},
    "done": {"en": "done", "ja": "完了"},
    "going": {"en": "in progress", "ja": "処理中"},
    "dead_again": {"en": "dead again", "ja": "再び失敗"},
    "state_running": {"en": "running", "ja": "実行中"},
    "state_done": {"en": "done", "ja": "完了"},
    "state_cancelled": {"en": "cancelled", "ja": "中止"},
    "replay_note": {"en": "A replay job, as `ichido replay` runs it: paged, resumable with"
                            " `ichido replay --resume`. In flight counts every event of the"
                            " filter on its way now.",
                    "ja": "`ichido replay` と同じ再実行ジョブです（ページ単位、`ichido replay --resume`"
                          " で再開可能）。処理中は条件に合う処理待ちイベントの数です。"},
    "same_object": {"en": "Other events of this object", "ja": "同じオブジェクトのイベント"},
    "subscription": {"en": "Subscription", "ja": "サブスクリプション"},
    "object": {"en": "Object", "ja": "オブジェクト"},
    "not_found": {"en": "No such event.", "ja": "そのイベントはありません。"},
    "limit": {"en": "limit", "ja": "上限"},
    "reconciler": {"en": "Reconciler", "ja": "照合（Reconciler）"},
    "reconciler_absent": {"en": "The reconciler's tables are not in this store.",
                          "ja": "このストアに照合のテーブルはありません。"},
    "last_run": {"en": "last run", "ja": "最終実行"},
    "never_ran": {"en": "It has not run against this store yet (ichido reconcile).",
                  "ja": "このストアではまだ実行されていません（ichido reconcile）。"},
    "walking": {"en": "walking back, at", "ja": "遡行中"},
    "cursor": {"en": "cursor", "ja": "カーソル"},
    "who": {"en": "Who", "ja": "実行者"},
    "when": {"en": "When", "ja": "日時"},
    "what": {"en": "What", "ja": "内容"},
    "count": {"en": "Count", "ja": "件数"},
    "bad_request": {"en": "That request was refused.", "ja": "リクエストは拒否されました。"},
    "csrf": {"en": "The form was stale or came from elsewhere; reload the page and try again.",
             "ja": "フォームが古いか外部から送信されました。再読み込みしてやり直してください。"},
    "storage": {"en": "The store cannot be read right now", "ja": "現在データを読み込めません"},
    "seconds": {"en": "s", "ja": "秒"},
    "language": {"en": "日本語", "ja": "English"},
}


def translator(lang: str) -> Callable[[str], str]:
    def t(key: str) -> str:
        entry = MESSAGES.get(key)
        return entry.get(lang, entry["en"]) if entry else key
    return t


def pick(cookie: str | None, accept_language: str | None) -> str:
    if cookie in LANGUAGES:
        return cookie
    return "ja" if (accept_language or "").lower().startswith("ja") else "en"

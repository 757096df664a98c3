#include "app/gui/workers/BackgroundJob.h"

#include "core/error.h"

#include <exception>

namespace mlawb::gui {

BackgroundJob::BackgroundJob(QObject* parent) : QObject(parent) {}

BackgroundJob::~BackgroundJob() {
    cancel_requested_ = true;
    if (thread_.joinable()) thread_.join();
}

bool BackgroundJob::start(Work work) {
    if (running_) return false;
    if (thread_.joinable()) thread_.join();
    cancel_requested_ = false;
    running_ = true;
    thread_ = std::thread([this, work = std::move(work)] {
        JobControl control;
        control.progress = [this](int64_t done, int64_t total) {
            QMetaObject::invokeMethod(
                this, [this, done, total] { Q_EMIT progressed(done, total); }, Qt::QueuedConnection);
        };
        control.cancelled = [this] { return cancel_requested_.load(); };
        control.post = [this](std::function<void()> update) {
            QMetaObject::invokeMethod(this, std::move(update), Qt::QueuedConnection);
        };
        std::function<void()> publish;
        bool cancelled = false;
        QString error;
        try {
            publish = work(control);
        } catch (const mlawb::Cancelled&) {
            cancelled = true;
        } catch (const mlawb::Error& e) {
            error = QString::fromStdString(e.what());
        } catch (const std::exception& e) {
            error = QString::fromStdString(e.what());
        }
        QMetaObject::invokeMethod(
            this, [this, publish, cancelled, error] { deliver(publish, cancelled, error); }, Qt::QueuedConnection);
    });
    return true;
}

void BackgroundJob::deliver(const std::function<void()>& publish, bool cancelled, const QString& error) {
    // The worker has posted its last act; joining costs at most the thread's exit.
    if (thread_.joinable()) thread_.join();
    running_ = false;
    if (cancelled) {
        Q_EMIT finished(false, true, QStringLiteral("cancelled"));
    } else if (!error.isEmpty() || !publish) {
        Q_EMIT finished(false, false, error.isEmpty() ? QStringLiteral("the job returned no result") : error);
    } else {
        publish();
        Q_EMIT finished(true, false, QString());
    }
}

}  // namespace mlawb::gui

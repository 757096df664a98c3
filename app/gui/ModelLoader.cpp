#include "app/gui/ModelLoader.h"

#include "core/error.h"

#include <exception>

namespace mlawb::gui {

ModelLoader::ModelLoader(QObject* parent) : QObject(parent) {
    // Queued signal arguments and QSignalSpy both need the type known to the meta-type system.
    qRegisterMetaType<mlawb::ModelSummary>();
}

ModelLoader::~ModelLoader() {
    for (auto& [request, worker] : workers_)
        if (worker.joinable()) worker.join();
}

void ModelLoader::load(const QString& folder) {
    const uint64_t request = ++latest_request_;
    ++pending_loads_;
    workers_.emplace(request, std::thread([this, request, folder] {
        auto summary = std::make_shared<mlawb::ModelSummary>();
        QString error;
        try {
            *summary = mlawb::ModelSummary::from_folder(folder.toStdString());
        } catch (const mlawb::Error& e) {
            error = QString::fromStdString(e.what());
        } catch (const std::exception& e) {
            // Anything else (bad_alloc on a corrupt header, filesystem errors) still names the folder.
            error = folder + QStringLiteral(": ") + QString::fromStdString(e.what());
        }
        if (!error.isEmpty()) summary.reset();
        QMetaObject::invokeMethod(
            this, [this, request, folder, summary, error] { deliver(request, folder, summary, error); },
            Qt::QueuedConnection);
    }));
}

void ModelLoader::deliver(uint64_t request, const QString& folder, std::shared_ptr<mlawb::ModelSummary> summary,
                          const QString& error) {
    // The worker has posted its last act; joining here costs at most the thread's exit.
    auto worker = workers_.find(request);
    if (worker != workers_.end()) {
        worker->second.join();
        workers_.erase(worker);
    }
    --pending_loads_;
    if (request != latest_request_) return;  // superseded by a newer load()
    if (summary) Q_EMIT loaded(folder, *summary);
    else Q_EMIT failed(folder, error);
}

}  // namespace mlawb::gui
